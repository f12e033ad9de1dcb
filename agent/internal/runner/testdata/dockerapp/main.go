// Command dockerapp is the container of the runner's Docker tests, built
// static into an image FROM scratch. MODE selects its behaviour:
//
//	serve   HTTP on :8080: /healthz answers 200 until /fail is requested
//	crash   exit 3 at once
//	trap    print "got SIGTERM" on SIGTERM and exit 0
//	ignore  ignore SIGTERM and sleep
package main

import (
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	mode := os.Getenv("MODE")
	fmt.Printf("dockerapp mode %s version %s\n", mode, os.Getenv("VERSION"))
	switch mode {
	case "crash":
		os.Exit(3)
	case "trap":
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM)
		fmt.Println("trapping SIGTERM")
		<-ch
		fmt.Println("got SIGTERM")
	case "ignore":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
		time.Sleep(24 * time.Hour)
	default:
		var failing atomic.Bool
		http.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
			if failing.Load() {
				http.Error(w, "failing", http.StatusInternalServerError)
				return
			}
			fmt.Fprintln(w, "ok")
		})
		http.HandleFunc("/fail", func(w http.ResponseWriter, _ *http.Request) {
			failing.Store(true)
			fmt.Println("health now failing")
		})
		fmt.Println("serving on :8080")
		if err := http.ListenAndServe(":8080", nil); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
	}
}

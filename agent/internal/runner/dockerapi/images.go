package dockerapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// splitRef splits an image reference into repository and tag or digest;
// the tag defaults to latest, as for docker pull.
func splitRef(ref string) (repo, tag string) {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[:i], ref[i+1:]
	}
	return ref, "latest"
}

// Pull fetches image from its registry.
func (c *Client) Pull(ctx context.Context, image string) error {
	repo, tag := splitRef(image)
	q := url.Values{"fromImage": {repo}, "tag": {tag}}
	resp, err := c.send(ctx, "pull image", http.MethodPost, "/images/create", q, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return readProgress("pull image "+image, resp.Body)
}

// Build builds an image tagged tag from a tar build context holding a
// Dockerfile, removing intermediate containers.
func (c *Client) Build(ctx context.Context, tarContext io.Reader, tag string) error {
	q := url.Values{"t": {tag}, "rm": {"1"}, "forcerm": {"1"}}
	resp, err := c.send(ctx, "build image", http.MethodPost, "/build", q, tarContext)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return readProgress("build image "+tag, resp.Body)
}

// ImageExists reports whether the daemon has image locally.
func (c *Client) ImageExists(ctx context.Context, image string) (bool, error) {
	err := c.do(ctx, "inspect image", http.MethodGet, "/images/"+image+"/json", nil, nil, nil)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// RemoveImage untags and deletes image; a missing image is not an error.
func (c *Client) RemoveImage(ctx context.Context, image string) error {
	err := c.do(ctx, "remove image", http.MethodDelete, "/images/"+image, url.Values{"force": {"1"}}, nil, nil)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

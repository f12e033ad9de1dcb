package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"gopkg.in/yaml.v3"
)

// Goal names a preset objective.
type Goal string

// Goals. The default is GoalCost: run where it costs least, which makes
// already-paid-for edge nodes the first choice.
const (
	GoalCost     Goal = "cost"
	GoalLatency  Goal = "latency"
	GoalBalanced Goal = "balanced"
)

// Objective is what placement optimises among the sites that satisfy every
// constraint. In YAML it is either a goal or explicit weights:
//
//	objective: cost
//	objective: {weights: {cost: 0.7, latency: 0.3}}
//
// With explicit weights, every term not named weighs 0. GoalCost weighs
// {cost: 1, balance: 0.1, affinity: 0.3}, GoalLatency {latency: 1,
// balance: 0.1, affinity: 0.3} and GoalBalanced {cost: 0.4, latency: 0.4,
// balance: 0.2, affinity: 0.3}; a term that does not apply (latency
// without a data source, affinity without affinities) drops out.
type Objective struct {
	Goal    Goal
	Weights *Weights
}

// Weights weigh the scoring terms; only their ratios matter.
type Weights struct {
	// Cost favours sites with the lowest estimated price per hour.
	Cost float64 `yaml:"cost,omitempty" json:"cost,omitempty"`
	// Latency favours sites with the shortest round trip to the data source.
	Latency float64 `yaml:"latency,omitempty" json:"latency,omitempty"`
	// Balance favours the least-allocated sites, spreading load.
	Balance float64 `yaml:"balance,omitempty" json:"balance,omitempty"`
	// Affinity applies the placement's affinities.
	Affinity float64 `yaml:"affinity,omitempty" json:"affinity,omitempty"`
}

// Preset weights of each goal. Cost and latency goals optimise their term;
// balance only separates sites that tie on it (edge nodes all cost the
// same), and affinities may outweigh small differences, as preferences
// should.
var goalWeights = map[Goal]Weights{
	GoalCost:     {Cost: 1, Balance: 0.1, Affinity: 0.3},
	GoalLatency:  {Latency: 1, Balance: 0.1, Affinity: 0.3},
	GoalBalanced: {Cost: 0.4, Latency: 0.4, Balance: 0.2, Affinity: 0.3},
}

// Resolve returns the weights in force: the explicit weights, or the
// preset of the goal (GoalCost when none is set). An unknown goal, which
// Validate rejects, resolves to GoalCost.
func (o Objective) Resolve() Weights {
	if o.Weights != nil {
		return *o.Weights
	}
	if w, ok := goalWeights[o.Goal]; ok {
		return w
	}
	return goalWeights[GoalCost]
}

// String returns the goal or the weights.
func (o Objective) String() string {
	if o.Weights != nil {
		w := o.Weights
		return fmt.Sprintf("weights{cost:%g latency:%g balance:%g affinity:%g}", w.Cost, w.Latency, w.Balance, w.Affinity)
	}
	if o.Goal == "" {
		return string(GoalCost)
	}
	return string(o.Goal)
}

const objectiveFix = "write a goal (cost, latency, balanced) or {weights: {cost: 0.7, latency: 0.3}}"

// MarshalYAML writes the goal, or the weights mapping.
func (o Objective) MarshalYAML() (any, error) {
	if o.Weights != nil {
		return map[string]*Weights{"weights": o.Weights}, nil
	}
	return string(o.Goal), nil
}

// UnmarshalYAML reads a goal or a weights mapping.
func (o *Objective) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		*o = Objective{Goal: Goal(n.Value)}
		return nil
	case yaml.MappingNode:
	default:
		return typeError(n, "objective: "+objectiveFix)
	}
	var out Objective
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value != "weights" {
			return typeError(k, fmt.Sprintf("objective: unknown field %q: %s", k.Value, objectiveFix))
		}
		w, err := weightsFromYAML(v)
		if err != nil {
			return err
		}
		out.Weights = w
	}
	if out.Weights == nil {
		return typeError(n, "objective: "+objectiveFix)
	}
	*o = out
	return nil
}

func weightsFromYAML(n *yaml.Node) (*Weights, error) {
	if n.Kind != yaml.MappingNode {
		return nil, typeError(n, "objective.weights: "+objectiveFix)
	}
	w := new(Weights)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f, err := strconv.ParseFloat(v.Value, 64)
		if v.Kind != yaml.ScalarNode || err != nil {
			return nil, typeError(v, fmt.Sprintf("objective.weights.%s %q: use a number like 0.5", k.Value, v.Value))
		}
		switch k.Value {
		case "cost":
			w.Cost = f
		case "latency":
			w.Latency = f
		case "balance":
			w.Balance = f
		case "affinity":
			w.Affinity = f
		default:
			return nil, typeError(k, fmt.Sprintf("objective.weights: unknown term %q: use cost, latency, balance or affinity", k.Value))
		}
	}
	return w, nil
}

// MarshalJSON writes the goal as a string, or {"weights": {...}}.
func (o Objective) MarshalJSON() ([]byte, error) {
	if o.Weights != nil {
		return json.Marshal(map[string]*Weights{"weights": o.Weights})
	}
	return json.Marshal(string(o.Goal))
}

// UnmarshalJSON reads a goal string or {"weights": {...}}, rejecting
// unknown fields.
func (o *Objective) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var g string
		if err := json.Unmarshal(b, &g); err != nil {
			return fmt.Errorf("objective: %w", err)
		}
		*o = Objective{Goal: Goal(g)}
		return nil
	}
	var v struct {
		Weights *Weights `json:"weights"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil || v.Weights == nil {
		return fmt.Errorf("objective %s: %s", b, objectiveFix)
	}
	*o = Objective{Weights: v.Weights}
	return nil
}

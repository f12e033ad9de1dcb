package spec

import "slices"

// Jurisdiction zones: a zone in Placement.Jurisdictions allows every member
// country. Members are ISO 3166-1 alpha-2 codes (Greece is GR).
var jurisdictionZones = map[string][]string{
	"EU": euMembers,
	"EEA": append(slices.Clone(euMembers),
		"IS", "LI", "NO"),
}

var euMembers = []string{
	"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
	"IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
}

// JurisdictionZones returns the zone names Placement.Jurisdictions accepts
// besides country codes, sorted.
func JurisdictionZones() []string {
	z := make([]string, 0, len(jurisdictionZones))
	for k := range jurisdictionZones {
		z = append(z, k)
	}
	slices.Sort(z)
	return z
}

// ZoneMembers returns the member countries of zone, or nil when zone is
// not a zone.
func ZoneMembers(zone string) []string { return slices.Clone(jurisdictionZones[zone]) }

// JurisdictionAllowed reports whether data may be processed in site (a
// site's jurisdiction) under the allowed list, and which entry of the list
// allows it: an exact match first, then the first zone containing it. An
// empty list allows everything (rule ""); a site without a jurisdiction is
// allowed only by an empty list.
func JurisdictionAllowed(allowed []string, site string) (rule string, ok bool) {
	if len(allowed) == 0 {
		return "", true
	}
	if site == "" {
		return "", false
	}
	for _, a := range allowed {
		if a == site {
			return a, true
		}
	}
	for _, a := range allowed {
		if slices.Contains(jurisdictionZones[a], site) {
			return a, true
		}
	}
	return "", false
}

// ValidJurisdiction reports whether j can name a jurisdiction: a zone
// (EU, EEA) or an ISO 3166-1 alpha-2 code (two upper-case letters).
func ValidJurisdiction(j string) bool { return validJurisdiction(j) }

func validJurisdiction(j string) bool {
	if _, ok := jurisdictionZones[j]; ok {
		return true
	}
	return len(j) == 2 && j[0] >= 'A' && j[0] <= 'Z' && j[1] >= 'A' && j[1] <= 'Z'
}

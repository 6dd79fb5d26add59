// Package suggest finds the name a typo was meant to be, for "did you
// mean" hints: one rule for the helper config's fields and the STACKIT
// credentials file's names.
package suggest

import "strings"

// Closest returns the candidate nearest to name, ignoring case, when it is
// at most maxDistance edits away.
func Closest(name string, candidates []string, maxDistance int) (string, bool) {
	best, bestDistance := "", maxDistance+1
	for _, c := range candidates {
		if d := distance(strings.ToLower(name), strings.ToLower(c), bestDistance); d < bestDistance {
			best, bestDistance = c, d
		}
	}
	return best, best != ""
}

// distance is the Levenshtein distance of a and b, or limit when it is
// limit or more; long strings stop early, so no input makes it slow.
func distance(a, b string, limit int) int {
	if d := len(a) - len(b); d >= limit || -d >= limit {
		return limit
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		rowMin := cur[0]
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			rowMin = min(rowMin, cur[j])
		}
		if rowMin >= limit {
			return limit
		}
		prev, cur = cur, prev
	}
	return min(prev[len(b)], limit)
}

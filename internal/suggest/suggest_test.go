package suggest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestClosestFindsTheTypoedName(t *testing.T) {
	fields := []string{"serviceAccountKeyPath", "privateKeyPath", "tokenEndpoint"}
	got, ok := Closest("serviceAcountKeyPath", fields, 3)
	assert.True(t, ok)
	assert.Equal(t, "serviceAccountKeyPath", got)
	got, ok = Closest("STACKIT_SERVICE_ACCOUNT_KEY_PAHT", []string{"STACKIT_SERVICE_ACCOUNT_KEY_PATH", "STACKIT_PRIVATE_KEY_PATH"}, 2)
	assert.True(t, ok)
	assert.Equal(t, "STACKIT_SERVICE_ACCOUNT_KEY_PATH", got)
	got, ok = Closest("PrivateKeyPath", fields, 0)
	assert.True(t, ok, "case is not a typo")
	assert.Equal(t, "privateKeyPath", got)
}

func TestClosestSaysNothingForUnrelatedNames(t *testing.T) {
	_, ok := Closest("registries", []string{"serviceAccountKeyPath", "tokenEndpoint"}, 3)
	assert.False(t, ok)
	_, ok = Closest(strings.Repeat("x", 100000), []string{"tokenEndpoint"}, 3)
	assert.False(t, ok, "a huge name is answered at once")
}

func TestDistance(t *testing.T) {
	assert.Equal(t, 0, distance("abc", "abc", 5))
	assert.Equal(t, 1, distance("abc", "abd", 5))
	assert.Equal(t, 3, distance("kitten", "sitting", 5))
	assert.Equal(t, 2, distance("kitten", "sitting", 2), "capped at the limit")
}

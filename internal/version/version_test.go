package version

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestUnstampedBuildsReportTheVersionFile(t *testing.T) {
	v, _ := Get()
	assert.Equal(t, strings.TrimSpace(file), v, "a plain go build reports the VERSION file, never (devel)")
	assert.Regexp(t, regexp.MustCompile(`^\d+\.\d+\.\d+`), v, "VERSION holds a semantic version")
	assert.True(t, strings.HasPrefix(String("docker-credential-stackit"), "docker-credential-stackit "+v))
}

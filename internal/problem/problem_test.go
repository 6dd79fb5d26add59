package problem

import (
	"errors"
	"fmt"
	"io/fs"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestErrorPrintsWhatThenFix(t *testing.T) {
	err := New("the key is empty", "download it again")
	assert.Equal(t, "the key is empty; download it again", err.Error())
	assert.Equal(t, "nothing to do", New("nothing to do", "").Error())
}

func TestWrapKeepsTheCauseForErrorsIs(t *testing.T) {
	err := Wrap(fs.ErrNotExist, "read /k.json: file not found", "set STACKIT_SERVICE_ACCOUNT_KEY_PATH")
	assert.ErrorIs(t, err, fs.ErrNotExist)
	assert.NotContains(t, err.Error(), fs.ErrNotExist.Error(), "the cause is not printed twice")
}

func TestSplitKeepsContextAndSeparatesTheFix(t *testing.T) {
	err := fmt.Errorf("registry.example.com: %w", New("token endpoint unreachable", "check the network"))
	what, fix := Split(err)
	assert.Equal(t, "registry.example.com: token endpoint unreachable", what)
	assert.Equal(t, "check the network", fix)

	// A wrapper that appends keeps its words in what is wrong.
	err = fmt.Errorf("%w (gave up after 3 attempts)", New("token endpoint unreachable", "check the network"))
	what, fix = Split(err)
	assert.Equal(t, "token endpoint unreachable (gave up after 3 attempts)", what)
	assert.Equal(t, "check the network", fix)
}

func TestSplitOfAnUntypedErrorHasNoFix(t *testing.T) {
	what, fix := Split(errors.New("something; with a semicolon"))
	assert.Equal(t, "something; with a semicolon", what, "untyped text is never split")
	assert.Empty(t, fix)
	what, fix = Split(nil)
	assert.Empty(t, what)
	assert.Empty(t, fix)
}

type statusError struct{ code int }

func (e statusError) Error() string    { return fmt.Sprintf("HTTP %d; %s", e.code, e.HowToFix()) }
func (e statusError) HowToFix() string { return "try again shortly" }

func TestSplitUsesAnyFixer(t *testing.T) {
	what, fix := Split(fmt.Errorf("host: %w", statusError{503}))
	assert.Equal(t, "host: HTTP 503", what)
	assert.Equal(t, "try again shortly", fix)
}

func TestOneLineJoinsLines(t *testing.T) {
	assert.Equal(t, "a b c", OneLine(errors.New("a\nb\r\n  c")))
}

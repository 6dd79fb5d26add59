package safefile

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type keyFile struct {
	ID          string `json:"id"`
	Credentials struct {
		Kid     string `json:"kid"`
		Expires int64  `json:"expires"`
	} `json:"credentials"`
	Ratio float64 `json:"ratio"`
	On    bool    `json:"on"`
}

func describeUnmarshal(t *testing.T, data string) string {
	t.Helper()
	var k keyFile
	err := json.Unmarshal([]byte(data), &k)
	require.Error(t, err)
	return DescribeJSONError([]byte(data), err)
}

func TestDescribeJSONSyntaxErrorGivesLineAndColumn(t *testing.T) {
	got := describeUnmarshal(t, "{\n  \"id\": \"x\",\n  \"credentials\": {\"kid\" \"s3cr3t\"}\n}")
	assert.Equal(t, "invalid JSON at line 3, column 25", got)
}

func TestDescribeJSONColumnsCountCharactersNotBytes(t *testing.T) {
	assert.Equal(t, "invalid JSON at line 1, column 9", describeUnmarshal(t, `{"ü": 1 x}`))
}

func TestDescribeJSONTruncatedInput(t *testing.T) {
	assert.Equal(t, "it ends in the middle of the JSON (line 2, column 8)", describeUnmarshal(t, "{\"id\":\n \"s3cr3t"))
	dec := json.NewDecoder(bytes.NewReader([]byte(`{"id": "s3`)))
	var k keyFile
	err := dec.Decode(&k)
	require.Error(t, err)
	assert.Equal(t, "it ends in the middle of the JSON", DescribeJSONError(nil, err))
}

func TestDescribeJSONEmptyInput(t *testing.T) {
	assert.Equal(t, "it is empty", describeUnmarshal(t, " \n"))
	var k keyFile
	err := json.NewDecoder(bytes.NewReader(nil)).Decode(&k)
	assert.Equal(t, "it is empty", DescribeJSONError(nil, err))
}

func TestDescribeJSONWrongTypeNamesFieldAndKinds(t *testing.T) {
	assert.Equal(t, `field "credentials.kid" must be a string, not a number`, describeUnmarshal(t, `{"credentials": {"kid": 12345}}`))
	assert.Equal(t, `field "credentials.expires" must be a whole number, not a number`, describeUnmarshal(t, `{"credentials": {"expires": 1.5}}`))
	assert.Equal(t, `field "credentials" must be an object, not a string`, describeUnmarshal(t, `{"credentials": "s3cr3t"}`))
	assert.Equal(t, `field "on" must be a boolean, not a string`, describeUnmarshal(t, `{"on": "yes"}`))
	assert.Equal(t, `field "id" must be a string, not a boolean`, describeUnmarshal(t, `{"id": true}`))
	assert.Equal(t, "it is a JSON array, not an object", describeUnmarshal(t, `["s3cr3t"]`))
}

func TestDescribeJSONNeverEchoesNumbersOrStrings(t *testing.T) {
	got := describeUnmarshal(t, `{"credentials": {"expires": 123456789012345678901234567890}}`)
	assert.NotContains(t, got, "1234")
	got = describeUnmarshal(t, `{"id": "s3cr3t" "more"}`)
	assert.NotContains(t, got, "s3cr3t")
}

func TestDescribeJSONUnknownFieldNamesIt(t *testing.T) {
	dec := json.NewDecoder(bytes.NewReader([]byte(`{"id": "x", "privatekey": "s3cr3t"}`)))
	dec.DisallowUnknownFields()
	var k keyFile
	err := dec.Decode(&k)
	require.Error(t, err)
	got := DescribeJSONError(nil, err)
	assert.Equal(t, `it has an unknown field "privatekey"`, got)
	assert.NotContains(t, got, "s3cr3t")
}

func TestDescribeJSONUnknownFieldNameIsTruncated(t *testing.T) {
	long := string(bytes.Repeat([]byte("k"), 500))
	dec := json.NewDecoder(bytes.NewReader([]byte(`{"` + long + `": 1}`)))
	dec.DisallowUnknownFields()
	var k keyFile
	got := DescribeJSONError(nil, dec.Decode(&k))
	assert.Less(t, len(got), 150)
	assert.Contains(t, got, "…")
}

func TestDescribeJSONNilErrorIsEmpty(t *testing.T) {
	assert.Empty(t, DescribeJSONError([]byte("{}"), nil))
}

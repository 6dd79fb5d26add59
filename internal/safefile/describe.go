package safefile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"reflect"
	"strings"
	"syscall"
	"unicode/utf8"
)

// DescribeFileError words an open or read error without the path (which the
// caller names anyway) in the same words on every OS: it asks errors.Is
// and fs.FileInfo-derived kinds, never Linux message text.
func DescribeFileError(err error) string {
	var e *Error
	var pe *fs.PathError
	switch {
	case errors.As(err, &e) && e.Problem != "":
		return e.Problem
	case errors.Is(err, fs.ErrNotExist):
		return "file not found"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case errors.Is(err, ErrTooLarge):
		return "is larger than 1 MiB, too large for this input"
	case errors.Is(err, ErrNotRegular):
		return "is not a regular file"
	case errors.Is(err, ErrUntrusted):
		return "is writable by another user"
	case errors.Is(err, syscall.EISDIR):
		return "is a directory, not a file"
	case errors.As(err, &pe):
		return pe.Err.Error() // the OS's words, without the path
	}
	return err.Error()
}

// DescribeJSONError words a decode error of data without echoing any of
// data, which may hold a private key: a syntax error by line and column,
// a type error by field name and JSON kinds, an unknown field by its name.
//
// encoding/json has no error type for DisallowUnknownFields; its message
// text "json: unknown field" is matched here and only here.
func DescribeJSONError(data []byte, err error) string {
	if err == nil {
		return ""
	}
	var syntax *json.SyntaxError
	var typeErr *json.UnmarshalTypeError
	switch {
	case len(bytes.TrimSpace(data)) == 0 && data != nil, errors.Is(err, io.EOF):
		return "it is empty"
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "it ends in the middle of the JSON"
	case errors.As(err, &syntax):
		if data == nil {
			return fmt.Sprintf("invalid JSON at byte %d", syntax.Offset)
		}
		line, col := position(data, syntax.Offset)
		if syntax.Offset >= int64(len(bytes.TrimRight(data, " \t\r\n"))) {
			return fmt.Sprintf("it ends in the middle of the JSON (line %d, column %d)", line, col)
		}
		return fmt.Sprintf("invalid JSON at line %d, column %d", line, col)
	case errors.As(err, &typeErr):
		// Value is a JSON kind, but for numbers json appends the literal:
		// keep only the kind.
		got, _, _ := strings.Cut(typeErr.Value, " ")
		if got == "bool" {
			got = "boolean"
		}
		if typeErr.Field == "" {
			return fmt.Sprintf("it is a JSON %s, not %s", got, withArticle(jsonKind(typeErr.Type)))
		}
		return fmt.Sprintf("field %q must be %s, not %s", truncate(typeErr.Field, 100), withArticle(jsonKind(typeErr.Type)), withArticle(got))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// The name is the file's own key, already quoted by json; keep it
		// short in case a key was used to smuggle data.
		return "it has an unknown field " + truncate(strings.TrimPrefix(err.Error(), "json: unknown field "), 100)
	}
	return "malformed JSON"
}

// position turns json's offset ("after reading Offset bytes") into the
// 1-based line and column (in characters) of the offending byte.
func position(data []byte, offset int64) (line, col int) {
	at := min(max(int(offset)-1, 0), len(data))
	before := data[:at]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = 1 + utf8.RuneCount(before[bytes.LastIndexByte(before, '\n')+1:])
	return line, col
}

// jsonKind names the JSON kind a Go type decodes from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "whole number"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Struct, reflect.Map:
		return "object"
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return "value"
}

func withArticle(kind string) string {
	if kind != "" && strings.ContainsRune("aeiou", rune(kind[0])) {
		return "an " + kind
	}
	return "a " + kind
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

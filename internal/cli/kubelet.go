package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker-credential-stackit/docker-credential-stackit/internal/safefile"

	"github.com/docker-credential-stackit/docker-credential-stackit/credhelper"
	"github.com/docker-credential-stackit/docker-credential-stackit/internal/problem"
)

// The kubelet image credential provider protocol
// (k8s.io/kubelet/pkg/apis/credentialprovider/v1). The structs are our own
// so that the helper does not pull in Kubernetes; they carry exactly the
// fields of the published API, because the kubelet decodes strictly.
const (
	kubeletAPIGroup     = "credentialprovider.kubelet.k8s.io"
	kubeletAPIVersionV1 = kubeletAPIGroup + "/v1"
	kubeletRequestKind  = "CredentialProviderRequest"
	kubeletResponseKind = "CredentialProviderResponse"
	// maxKubeletRequest bounds stdin: a request is an image name, a
	// service account token (a few KiB) and a handful of annotations.
	maxKubeletRequest = 1 << 20
)

// kubeletAPIVersions are the versions whose request and response shapes we
// implement. v1alpha1 and v1beta1 have the same fields minus the service
// account token; older kubelets still send them.
var kubeletAPIVersions = map[string]bool{
	kubeletAPIVersionV1:           true,
	kubeletAPIGroup + "/v1beta1":  true,
	kubeletAPIGroup + "/v1alpha1": true,
}

// AnnotationServiceAccountEmail, on a Kubernetes ServiceAccount and passed
// on by the kubelet (tokenAttributes.optionalServiceAccountAnnotationKeys),
// names the STACKIT service account that pods using it pull as.
const AnnotationServiceAccountEmail = "stackit.cloud/service-account-email"

// kubeletRequest is a CredentialProviderRequest.
type kubeletRequest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Image      string `json:"image"`
	// ServiceAccountToken is the pod's bound service account token, sent
	// by Kubernetes 1.33+ when tokenAttributes is configured.
	ServiceAccountToken       string            `json:"serviceAccountToken,omitempty"`
	ServiceAccountAnnotations map[string]string `json:"serviceAccountAnnotations,omitempty"`
}

// kubeletResponse is a CredentialProviderResponse. CacheDuration is a
// pointer-free string: empty means "not set" and is omitted, so that the
// kubelet applies its defaultCacheDuration.
type kubeletResponse struct {
	APIVersion    string                 `json:"apiVersion"`
	Kind          string                 `json:"kind"`
	CacheKeyType  string                 `json:"cacheKeyType"`
	CacheDuration string                 `json:"cacheDuration,omitempty"`
	Auth          map[string]kubeletAuth `json:"auth"`
}

type kubeletAuth struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// decodeKubeletRequest parses a CredentialProviderRequest strictly: unknown
// fields, trailing data, an unknown apiVersion or kind and a missing image
// are errors. It is pure so that it can be fuzzed. Errors never quote the
// input, which may hold a service account token.
func decodeKubeletRequest(data []byte) (*kubeletRequest, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var req kubeletRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("stdin is not a CredentialProviderRequest: %s; the kubelet sends {\"apiVersion\":%q,\"kind\":%q,\"image\":\"…\"}",
			safefile.DescribeJSONError(data, err), kubeletAPIVersionV1, kubeletRequestKind)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("stdin holds more than one JSON value; the kubelet sends exactly one CredentialProviderRequest")
	}
	if err := checkKubeletFieldCase(data); err != nil {
		return nil, err
	}
	switch {
	case req.APIVersion == "":
		return nil, fmt.Errorf("the request has no apiVersion; expected %s", kubeletAPIVersionV1)
	case !kubeletAPIVersions[req.APIVersion]:
		return nil, fmt.Errorf("unsupported apiVersion %q; set apiVersion: %s for this provider in the kubelet's CredentialProviderConfig", truncate(req.APIVersion, 80), kubeletAPIVersionV1)
	case req.Kind != kubeletRequestKind:
		return nil, fmt.Errorf("unsupported kind %q; expected %s", truncate(req.Kind, 80), kubeletRequestKind)
	case strings.TrimSpace(req.Image) == "":
		return nil, errors.New("the request has no image")
	}
	return &req, nil
}

// kubeletRequestFields are the request's JSON names, spelt exactly.
var kubeletRequestFields = []string{"apiVersion", "kind", "image", "serviceAccountToken", "serviceAccountAnnotations"}

// checkKubeletFieldCase rejects names that differ from the API's only in
// case: encoding/json would accept them, the kubelet's decoder would not.
func checkKubeletFieldCase(data []byte) error {
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return nil // the strict decode has already judged the shape
	}
	for field := range top {
		for _, name := range kubeletRequestFields {
			if strings.EqualFold(field, name) && field != name {
				return fmt.Errorf("the request field %q must be spelt %q", truncate(field, 40), name)
			}
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// imageRegistry returns the registry part of an image reference exactly as
// written (the kubelet matches auth keys against it, letter case included)
// and its normalised host. As in the Docker reference grammar, the first
// path component is a registry only if it has a dot or a colon, is
// localhost or has upper case letters; otherwise the image is on Docker Hub.
// A registry part that is not a reference domain (see validReferenceDomain)
// is an error: the image is malformed, and a string such as
// "registry.onstackit.cloud#.evil.com" must never become an auth key.
func imageRegistry(image string) (raw, host string, err error) {
	image = strings.TrimSpace(image)
	first, _, hasSlash := strings.Cut(image, "/")
	if !hasSlash || (!strings.ContainsAny(first, ".:") && first != "localhost" && strings.ToLower(first) == first) {
		return "docker.io", "docker.io", nil
	}
	bad := fmt.Errorf("image %q does not start with a registry host", truncate(image, 200))
	if !validReferenceDomain(first) {
		return "", "", bad
	}
	host, err = credhelper.NormalizeHost(first)
	if err != nil {
		return "", "", bad
	}
	return first, host, nil
}

// validReferenceDomain reports whether s is a domain of the OCI/Docker
// reference grammar (distribution/reference):
//
//	domain           := host [':' port-number]
//	host             := domain-name | '[' ipv6address ']'
//	domain-name      := domain-component ('.' domain-component)*
//	domain-component := /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//	port-number      := /[0-9]+/
//	ipv6address      := /[a-fA-F0-9:]+/ (bracketed)
//
// A registry part that passes is exactly a host and port: no user info,
// path, query, fragment, white space or escapes.
func validReferenceDomain(s string) bool {
	host, port, hasPort := s, "", false
	if strings.HasPrefix(s, "[") {
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return false
		}
		host = s[:end+1]
		if rest := s[end+1:]; rest != "" {
			if rest[0] != ':' {
				return false
			}
			port, hasPort = rest[1:], true
		}
	} else {
		host, port, hasPort = strings.Cut(s, ":")
	}
	if hasPort && (port == "" || strings.Trim(port, "0123456789") != "") {
		return false
	}
	if strings.HasPrefix(host, "[") {
		ip := host[1 : len(host)-1]
		return ip != "" && strings.Trim(ip, "0123456789abcdefABCDEF:") == ""
	}
	for _, c := range strings.Split(host, ".") {
		if c == "" || c[0] == '-' || c[len(c)-1] == '-' {
			return false
		}
		for i := 0; i < len(c); i++ {
			b := c[i]
			if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-') {
				return false
			}
		}
	}
	return true
}

// kubeletResponseFor answers one request. An image on a host this helper
// does not serve gets an empty auth map: the kubelet then pulls without
// credentials from us, as Docker does on credentials-not-found.
func kubeletResponseFor(ctx context.Context, h *credhelper.Helper, req *kubeletRequest, now time.Time, stderr io.Writer) (*kubeletResponse, error) {
	resp := &kubeletResponse{
		APIVersion:   req.APIVersion,
		Kind:         kubeletResponseKind,
		CacheKeyType: "Registry",
		Auth:         map[string]kubeletAuth{},
	}
	raw, host, err := imageRegistry(req.Image)
	if err != nil {
		// Not a registry we could serve: no credentials from us, as for
		// any foreign host.
		return emptyKubeletResponse(resp), nil
	}

	var cred *credhelper.Credential
	if email := strings.TrimSpace(req.ServiceAccountAnnotations[AnnotationServiceAccountEmail]); email != "" {
		if req.ServiceAccountToken == "" {
			return nil, fmt.Errorf("the ServiceAccount asks for STACKIT identity %s but the kubelet sent no serviceAccountToken; add tokenAttributes to this provider in the CredentialProviderConfig", email)
		}
		if !strings.Contains(email, "@") {
			return nil, fmt.Errorf("annotation %s is %q, which is not a service account email; set it to the email of the STACKIT service account, e.g. name-abc123@sa.stackit.cloud", AnnotationServiceAccountEmail, truncate(email, 100))
		}
		if _, ok, err := h.Served(host); err != nil {
			return nil, err
		} else if !ok {
			return emptyKubeletResponse(resp), nil
		}
		cred, err = h.PodCredential(ctx, host, email, "annotation "+AnnotationServiceAccountEmail+" on the pod's ServiceAccount", req.ServiceAccountToken)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", host, err)
		}
	} else {
		cred, err = h.Credential(ctx, host)
		if credhelper.IsNotFound(err) {
			var none *credhelper.NoCredentialsError
			if errors.As(err, &none) {
				fmt.Fprintf(stderr, "%s: warning: no credentials for %s: %v\n", Name, none.Host, none)
			}
			return emptyKubeletResponse(resp), nil
		}
		if err != nil {
			return nil, err
		}
	}

	resp.Auth[raw] = kubeletAuth{Username: cred.Username, Password: cred.Secret}
	switch {
	case cred.Static:
		// A robot secret can be rotated or revoked any day, while half its
		// life may be months: let the kubelet ask again soon.
		d := staticCacheDuration
		if !cred.Expiry.IsZero() {
			d = min(d, kubeletCacheDuration(cred.Expiry, now))
		}
		resp.CacheDuration = d.String()
	case !cred.Expiry.IsZero():
		resp.CacheDuration = kubeletCacheDuration(cred.Expiry, now).String()
	}
	return resp, nil
}

// staticCacheDuration bounds how long the kubelet keeps a stored login or a
// robot account's secret before asking again.
const staticCacheDuration = 5 * time.Minute

// emptyKubeletResponse answers "no credentials from us" and asks the kubelet
// not to cache that, so that adding the host or a key takes effect on the
// next pull rather than after defaultCacheDuration.
func emptyKubeletResponse(resp *kubeletResponse) *kubeletResponse {
	resp.CacheDuration = "0s"
	return resp
}

// kubeletCacheDuration is half the token's remaining life, in whole
// seconds, as the AWS provider does: the kubelet then asks again while the
// token still has half its life, and we answer from our own cache.
func kubeletCacheDuration(expiry, now time.Time) time.Duration {
	d := (expiry.Sub(now) / 2).Truncate(time.Second)
	if d < 0 {
		return 0
	}
	return d
}

// runKubelet implements `docker-credential-stackit kubelet`. Only the
// response goes to stdout; errors are one line on stderr, which the kubelet
// copies into its log, and exit status 1.
func runKubelet(args []string, env func(string) string, stdin io.Reader, stdout, stderr io.Writer, p credhelper.Platform) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "%s: kubelet: %s\n", Name, problem.OneLine(err))
		return 1
	}
	cacheDir, err := parseCacheDirFlags("kubelet", "kubelet [--cache-dir DIR]", args, stderr)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		return fail(err)
	}
	h, err := newHelper(env, stderr, cacheDir, p)
	if err != nil {
		return fail(err)
	}
	data, err := io.ReadAll(io.LimitReader(stdin, maxKubeletRequest+1))
	if err != nil {
		return fail(fmt.Errorf("read stdin: %w", err))
	}
	if len(data) > maxKubeletRequest {
		return fail(errors.New("stdin is larger than 1 MiB; expected one CredentialProviderRequest"))
	}
	req, err := decodeKubeletRequest(data)
	if err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.Settings().Budgets.Get)
	defer cancel()
	resp, err := kubeletResponseFor(ctx, h, req, time.Now(), stderr)
	if err != nil {
		return fail(err)
	}
	out, err := json.Marshal(resp)
	if err != nil {
		return fail(err)
	}
	if _, err := stdout.Write(append(out, '\n')); err != nil {
		return fail(fmt.Errorf("write the response: %w", err))
	}
	return 0
}

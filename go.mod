module github.com/docker-credential-stackit/docker-credential-stackit

go 1.26

require (
	github.com/adrg/xdg v0.5.3 // indirect
	github.com/docker/docker-credential-helpers v0.9.12 // indirect
	github.com/gofrs/flock v0.13.1 // indirect
	github.com/golang-jwt/jwt/v5 v5.3.1 // indirect
	github.com/google/go-containerregistry v0.22.1 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/sys v0.47.0 // indirect
)

// Built in GOPATH mode against Debian's golang-*-dev packages (/usr/share/gocode), offline:
// helm/tests/check.py links this directory into a GOPATH in the build tree and runs
// `GO111MODULE=off go build`. This file must stay: in GOPATH mode an import of
// github.com/Masterminds/sprig/v3 resolves to .../sprig only from code that has a go.mod.
module sluice/helm/render

go 1.19

// Package packaging holds what scripts/release puts into the Debian
// package and the container build context: the systemd unit, the default
// configuration, the maintainer scripts and the Dockerfile. Its test runs
// scripts/release and checks what it wrote.
package packaging

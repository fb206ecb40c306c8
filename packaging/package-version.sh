# shellcheck shell=bash
# Sourced by build-deb.sh and build-nova-deb.sh (which define $repo, $here and die): sets $version
# from Directory.Build.props' <Version>, which packaging/debian/changelog (both packages') must start with.
version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' "$repo/Directory.Build.props" | head -n 1)
[[ -n $version ]] || die "no <Version> in Directory.Build.props"
changelog_version=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' "$here/debian/changelog")
[[ $changelog_version == "$version" ]] ||
  die "packaging/debian/changelog starts with $changelog_version, Directory.Build.props says $version: add a changelog entry"

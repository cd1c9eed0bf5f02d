#!/bin/sh
# Vendors GraphiQL and React into chat/static/graphiql/vendor/ from the npm registry,
# so that the GraphiQL page at /graphql/ needs no CDN (offline, strict CSP).
# Each tarball is checked against its pinned sha512 (npm's `dist.integrity`) before
# anything is copied; each package's license goes beside its files.
# Run from the repository root: sh scripts/vendor_graphiql.sh
set -eu

DEST=chat/static/graphiql/vendor
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# name version integrity (npm view NAME@VERSION dist.integrity)
PACKAGES="
react 18.3.1 sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ==
react-dom 18.3.1 sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw==
graphiql 3.8.3 sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==
"

echo "$PACKAGES" | while read -r name version integrity; do
  [ -n "$name" ] || continue
  tarball=$(cd "$WORK" && npm pack --silent "$name@$version")
  actual="sha512-$(openssl dgst -sha512 -binary "$WORK/$tarball" | base64 -w0)"
  if [ "$actual" != "$integrity" ]; then
    echo "$name@$version: integrity mismatch ($actual)" >&2
    exit 1
  fi
  mkdir -p "$WORK/$name"
  tar xzf "$WORK/$tarball" -C "$WORK/$name"
done

mkdir -p "$DEST"
cp "$WORK/react/package/umd/react.production.min.js" "$DEST/react.production.min.js"
cp "$WORK/react-dom/package/umd/react-dom.production.min.js" "$DEST/react-dom.production.min.js"
# The source maps are not vendored: drop the comments that point at them (a missing
# map also fails `collectstatic` with the manifest storage).
sed '/^\/\/# sourceMappingURL=/d' "$WORK/graphiql/package/graphiql.min.js" >"$DEST/graphiql.min.js"
sed '/^\/\*# sourceMappingURL=.*\*\/$/d' "$WORK/graphiql/package/graphiql.min.css" >"$DEST/graphiql.min.css"
cp "$WORK/react/package/LICENSE" "$DEST/LICENSE.react"
cp "$WORK/react-dom/package/LICENSE" "$DEST/LICENSE.react-dom"
cp "$WORK/graphiql/package/LICENSE" "$DEST/LICENSE.graphiql"
{
  echo "Vendored by scripts/vendor_graphiql.sh from the npm registry (integrity checked):"
  echo "$PACKAGES" | sed '/^$/d'
} >"$DEST/VERSIONS"
echo "vendored into $DEST"

#!/usr/bin/env bash
# Swagger UI at /docs renders in a real browser with every operation listed:
#
#   openapi/check_docs.sh
#
# Starts Convoy (openapi/live_server.sh), loads /docs/ in headless Chromium (Debian
# `chromium`) and checks the rendered DOM lists each operation of openapi/openapi.json.
# Swagger UI is served from the binary, so the page needs no network. Skipped, with
# exit status 0 and a message saying so, only where chromium is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[check_docs] %s\n' "$*" >&2; }

CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$CHROMIUM" ]; then
  say "SKIPPED: chromium is not installed (Debian: apt-get install chromium)"
  exit 0
fi

. openapi/live_server.sh
start_server

profile=$(mktemp -d -p "$WORK")
say "rendering $BASE/docs/ in $("$CHROMIUM" --version 2>/dev/null | tail -n 1)"
timeout 90 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --dump-dom --virtual-time-budget=10000 \
  "$BASE/docs/" > "$WORK/dom.html" 2> "$WORK/chromium.log" || {
  say "chromium failed:"; tail -n 20 "$WORK/chromium.log" >&2; exit 1
}

# Swagger UI renders each operation as an element with id `operations-<tag>-<operationId>`
# holding its method and path.
python3 - "$WORK/dom.html" openapi/openapi.json <<'PY'
import json, re, sys
dom = open(sys.argv[1], encoding="utf-8").read()
spec = json.load(open(sys.argv[2]))
missing, found = [], 0
for path, item in spec["paths"].items():
    for method, op in item.items():
        anchor = f'id="operations-{op["tags"][0]}-{op["operationId"]}"'
        i = dom.find(anchor)
        if i < 0:
            missing.append(f"{method.upper()} {path}")
            continue
        block = dom[i:i + 2000]
        if (f'opblock-summary-method">{method.upper()}<' not in block
                or f'data-path="{path}"' not in block):
            missing.append(f"{method.upper()} {path} (rendered without its method/path)")
            continue
        found += 1
if "swagger-ui" not in dom or missing:
    print(f"/docs lists {found} operations; missing: {missing or 'the whole UI'}", file=sys.stderr)
    print(dom[:2000], file=sys.stderr)
    sys.exit(1)
title = re.search(r'<h2 class="title">\s*([^<]+)', dom)
print(f"[check_docs] OK: /docs rendered {found} operations"
      + (f" of '{title.group(1).strip()}'" if title else ""), file=sys.stderr)
PY

"""Build the map page's vendor assets: Leaflet from the npm registry, pinned by
ws_gateway/web/package-lock.json, copied into ws_gateway/static/vendor (git-ignored).

Idempotent: does nothing when the vendor files are there. ``python -m ws_gateway.build_assets``
runs it; the gateway runs it at start-up when the files are missing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from ws_gateway import GatewayError

PKG = Path(__file__).resolve().parent
WEB_DIR = PKG / "web"
VENDOR_DIR = PKG / "static" / "vendor"
LEAFLET_DIST = WEB_DIR / "node_modules" / "leaflet" / "dist"
VENDOR_FILES = ("leaflet.js", "leaflet.css")


def assets_ready(vendor_dir: Path = VENDOR_DIR) -> bool:
    return all((vendor_dir / name).is_file() for name in VENDOR_FILES)


def ensure_assets(force: bool = False) -> Path:
    """Make sure the vendor files exist (npm ci + copy when they do not); their folder."""
    if assets_ready() and not force:
        return VENDOR_DIR
    if force or not (LEAFLET_DIST / "leaflet.js").is_file():
        npm = shutil.which("npm")
        if npm is None:
            raise GatewayError(
                "npm is needed once to fetch the map library (Leaflet) into "
                f"{VENDOR_DIR}: install nodejs/npm, or run "
                "`python -m ws_gateway.build_assets` on a machine with npm"
            )
        proc = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--silent"],
            cwd=WEB_DIR,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise GatewayError(f"npm ci in {WEB_DIR} failed:\n{proc.stdout}\n{proc.stderr}")
    tmp = VENDOR_DIR.with_name("vendor.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in VENDOR_FILES:
        shutil.copy2(LEAFLET_DIST / name, tmp / name)
    shutil.copytree(LEAFLET_DIST / "images", tmp / "images")
    shutil.rmtree(VENDOR_DIR, ignore_errors=True)
    tmp.rename(VENDOR_DIR)
    return VENDOR_DIR


def main() -> int:
    try:
        out = ensure_assets(force="--force" in sys.argv[1:])
    except GatewayError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"map assets ready in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

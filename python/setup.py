"""Builds the native library from the Swift package around this folder (no prebuilt binaries):
`swift build -c release --product flashdist_c`, then ships libflashdist_c.so inside the package.
FLASHDIST_SWIFT_PACKAGE names the Swift package's folder when this one is not inside it."""
import os
import shutil
import subprocess
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.build_py import build_py

LIBRARY = "libflashdist_c.so"


def swift_package():
    folder = Path(os.environ.get("FLASHDIST_SWIFT_PACKAGE", Path(__file__).resolve().parent.parent))
    if not (folder / "Package.swift").exists():
        raise SystemExit(f"flashdist: {folder}: no Package.swift; set FLASHDIST_SWIFT_PACKAGE to the repository")
    return folder


class BuildWithSwift(build_py):
    def run(self):
        super().run()
        package = swift_package()
        subprocess.run(["swift", "build", "-c", "release", "--product", "flashdist_c"], cwd=package, check=True)
        binaries = subprocess.run(["swift", "build", "-c", "release", "--show-bin-path"], cwd=package, check=True,
                                  capture_output=True, text=True).stdout.strip()
        target = Path(self.build_lib) / "flashdist"
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(binaries) / LIBRARY, target / LIBRARY)


class NativeDistribution(Distribution):
    """A wheel for this platform only: it holds a native library."""

    def has_ext_modules(self):
        return True


setup(cmdclass={"build_py": BuildWithSwift}, distclass=NativeDistribution)

"""Build step of livenotify-django: the metadata is in pyproject.toml.

The package serves the browser client (static/livenotify/livenotify.js and the modules it
imports) without keeping a copy of it in this directory: the build copies the repository's
client modules (the .js files client/package.json lists) into the built package, so the wheel
always ships the client of the checkout it was built from.  An sdist carries the copied files
inside the package directory, so that it builds without the repository around it.
"""
import json
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_DIR = os.path.join(HERE, "..", "..", "client")
STATIC_DIR = os.path.join("livenotify_django", "static", "livenotify")


def client_files():
    """(source path, file name) of each client module to ship: the repository's, else the
    copies an sdist carries."""
    manifest = os.path.join(CLIENT_DIR, "package.json")
    if os.path.isfile(manifest):
        with open(manifest, encoding="utf-8") as f:
            names = [n for n in json.load(f)["files"] if n.endswith(".js")]
        return [(os.path.join(CLIENT_DIR, n), n) for n in names]
    carried = os.path.join(HERE, STATIC_DIR)
    names = sorted(n for n in os.listdir(carried) if n.endswith(".js")) if os.path.isdir(carried) else []
    if "livenotify.js" in names:
        return [(os.path.join(carried, n), n) for n in names]
    raise SystemExit(f"livenotify-django: {os.path.normpath(manifest)} not found: build from a "
                     "livenotify checkout (integrations/django/) or from its sdist")


def copy_client(base):
    target_dir = os.path.join(base, STATIC_DIR)
    os.makedirs(target_dir, exist_ok=True)
    targets = []
    for path, name in client_files():
        target = os.path.join(target_dir, name)
        if os.path.abspath(path) != os.path.abspath(target):
            shutil.copyfile(path, target)
        targets.append(target)
    return targets


class BuildPy(build_py):
    def run(self):
        super().run()
        copy_client(self.build_lib)

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [
            os.path.join(self.build_lib, STATIC_DIR, name) for _, name in client_files()]


class Sdist(sdist):
    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        copy_client(base_dir)


setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})

"""Build step of livenotify-django: the metadata is in pyproject.toml.

The package serves the browser client (static/livenotify/livenotify.js) without keeping a
copy of it in this directory: the build copies the repository's client/livenotify.js into the
built package, so the wheel always ships the client of the checkout it was built from.  An
sdist carries the copied file inside the package directory, so that it builds without the
repository around it.
"""
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(HERE, "..", "..", "client", "livenotify.js")
STATIC = os.path.join("livenotify_django", "static", "livenotify", "livenotify.js")


def client_source():
    """The client to ship: the repository's, else the copy an sdist carries."""
    for path in (CLIENT, os.path.join(HERE, STATIC)):
        if os.path.isfile(path):
            return path
    raise SystemExit(f"livenotify-django: {os.path.normpath(CLIENT)} not found: build from a "
                     "livenotify checkout (integrations/django/) or from its sdist")


class BuildPy(build_py):
    def run(self):
        super().run()
        target = os.path.join(self.build_lib, STATIC)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(client_source(), target)

    def get_outputs(self, include_bytecode=True):
        return super().get_outputs(include_bytecode) + [os.path.join(self.build_lib, STATIC)]


class Sdist(sdist):
    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        target = os.path.join(base_dir, STATIC)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(client_source(), target)


setup(cmdclass={"build_py": BuildPy, "sdist": Sdist})

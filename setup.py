"""Package discovery plus the one mapping pyproject.toml cannot express.

The rules live in ``rules/`` at the repository root (DESIGN §2) and are installed as the data
package ``tuilora.rules``, so an installed tuilora reads them with importlib.resources.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["tuilora", "tuilora.*"]), "tuilora.rules"],
    package_dir={"tuilora.rules": "rules"},
    package_data={"tuilora.rules": ["*.toml"]},
)

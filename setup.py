"""Package discovery plus the one mapping pyproject.toml cannot express.

The rules live in ``rules/`` at the repository root (DESIGN §2) and are installed as the data
package ``tuilora.rules``, so an installed tuilora reads them with importlib.resources; the
model configs and CLIP merges ship inside ``tuilora.modelfile`` the same way.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["tuilora", "tuilora.*"]), "tuilora.rules"],
    package_dir={"tuilora.rules": "rules"},
    package_data={
        "tuilora.rules": ["*.toml"],
        # The component configs and CLIP vocabulary that make single-file models load offline.
        "tuilora.modelfile": ["configs/*.json", "clip_merges.txt.gz"],
    },
)

"""Build the JVM half of the Spark engine: `python -m rowcast.jobs.spark.build` (scripts/setup).

Maven resolves the HBase classes (java/pom.xml) into ~/.m2; javac compiles java/src against
them and the installed pyspark's own jars, so the helper always matches the Spark that runs
it. The output, under java/build/ (ignored by git), is the helper's jar and `classpath.txt`:
the HBase jars Spark does not already ship (the driver and executors get them as
`spark.jars`; a jar Spark has in another version is left out, so Spark's own wins).
Rebuilt only when the pom, the sources or the pyspark version changed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyspark

JAVA_DIR = Path(__file__).parent / "java"
BUILD_DIR = JAVA_DIR / "build"
_VERSIONED = re.compile(r"-\d.*\.jar$")


@dataclass(frozen=True)
class HelperJars:
    """What the Spark driver and executors need on top of Spark: the helper and HBase."""

    helper: Path
    hbase: tuple[Path, ...]

    @property
    def all(self) -> list[Path]:
        return [self.helper, *self.hbase]


def spark_jars_dir() -> Path:
    return Path(pyspark.__file__).parent / "jars"


def _artifact(jar: Path) -> str:
    """A jar's artifact name without its version or Scala suffix (netty-common-4.1.jar:
    netty-common)."""
    return re.sub(r"_2\.1[23]$", "", _VERSIONED.sub("", jar.name))


def _fingerprint() -> str:
    digest = hashlib.sha256(pyspark.__version__.encode())
    for path in sorted([JAVA_DIR / "pom.xml", *JAVA_DIR.glob("src/**/*.java")]):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def built() -> HelperJars | None:
    """The built jars when they are current, else None."""
    stamp = BUILD_DIR / "fingerprint"
    listing = BUILD_DIR / "classpath.txt"
    jar = BUILD_DIR / "rowcast-spark.jar"
    if not (stamp.exists() and listing.exists() and jar.exists()):
        return None
    if stamp.read_text().strip() != _fingerprint():
        return None
    hbase = tuple(Path(p) for p in listing.read_text().split(os.pathsep) if p)
    if not all(p.exists() for p in hbase):
        return None  # a cleaned ~/.m2
    return HelperJars(jar, hbase)


def build(force: bool = False) -> HelperJars:
    """Resolve, compile and package the helper (quick when nothing changed)."""
    current = None if force else built()
    if current is not None:
        return current
    mvn, javac, jar_tool = (shutil.which(t) for t in ("mvn", "javac", "jar"))
    if not (mvn and javac and jar_tool):
        raise RuntimeError("building the Spark helper needs mvn, javac and jar (a JDK 17) on PATH")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=BUILD_DIR) as tmp:
        resolved = Path(tmp) / "cp.txt"
        subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(JAVA_DIR / "pom.xml"),
                "dependency:build-classpath",
                f"-Dmdep.outputFile={resolved}",
            ],
            check=True,
        )
        hbase = [Path(p) for p in resolved.read_text().strip().split(os.pathsep) if p]
        spark = {_artifact(j) for j in spark_jars_dir().glob("*.jar")}
        # HBase's own third-party jars are relocated (hbase-shaded-*); plain netty comes with
        # ZooKeeper, which Spark ships too.
        extra = [j for j in hbase if _artifact(j) not in spark and not j.name.startswith("netty-")]
        classes = Path(tmp) / "classes"
        classes.mkdir()
        sources = [str(p) for p in sorted(JAVA_DIR.glob("src/**/*.java"))]
        compile_cp = os.pathsep.join([str(spark_jars_dir() / "*"), *map(str, hbase)])
        subprocess.run(
            [javac, "-nowarn", "--release", "17", "-d", str(classes), "-cp", compile_cp, *sources],
            check=True,
        )
        jar = BUILD_DIR / "rowcast-spark.jar"
        subprocess.run([jar_tool, "cf", str(jar), "-C", str(classes), "."], check=True)
        (BUILD_DIR / "classpath.txt").write_text(os.pathsep.join(map(str, extra)))
        (BUILD_DIR / "fingerprint").write_text(_fingerprint() + "\n")
    return HelperJars(jar, tuple(extra))


def main() -> int:
    jars = build(force="--force" in sys.argv[1:])
    print(f"spark helper: {jars.helper} (+{len(jars.hbase)} HBase jars)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Schema-evolution guard: does a reader schema read what a writer schema wrote?

Checked by doing it: random records valid for the writer are encoded and decoded with
Avro resolution into the reader. Used by the schema-evolution tests on every pair of
kept versions, in both directions (backward: new reads old; forward: old reads new).
"""

from __future__ import annotations

import io
import random
import string
from collections.abc import Mapping
from typing import Any

import fastavro

from schemas.codec import strip_logical_types

_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


class _Generator:
    """Random data for any Avro schema, named types resolved as they are defined."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.named: dict[str, Any] = {}

    def datum(self, schema: Any, namespace: str = "") -> Any:
        if isinstance(schema, list):
            return self.datum(self.rng.choice(schema), namespace)
        if isinstance(schema, str):
            if schema in _PRIMITIVES:
                return self._primitive(schema)
            full = schema if "." in schema or not namespace else f"{namespace}.{schema}"
            return self.datum(self.named.get(full, self.named.get(schema)), namespace)
        kind = schema["type"]
        if kind in _PRIMITIVES:
            return self._primitive(kind)
        if kind == "array":
            return [self.datum(schema["items"], namespace) for _ in range(self.rng.randrange(4))]
        if kind == "map":
            return {self._text(): self.datum(schema["values"], namespace) for _ in range(3)}
        namespace = schema.get("namespace", namespace)
        full = schema["name"] if "." in schema["name"] else f"{namespace}.{schema['name']}"
        self.named[full] = self.named[schema["name"]] = schema
        if kind == "enum":
            return self.rng.choice(schema["symbols"])
        if kind == "fixed":
            return self.rng.randbytes(schema["size"])
        return {f["name"]: self.datum(f["type"], namespace) for f in schema["fields"]}

    def _primitive(self, kind: str) -> Any:
        rng = self.rng
        return {
            "null": lambda: None,
            "boolean": lambda: rng.random() < 0.5,
            "int": lambda: rng.randint(-(2**31), 2**31 - 1),
            "long": lambda: rng.randint(-(2**63), 2**63 - 1),
            "float": lambda: float(rng.randint(-1000, 1000)),
            "double": lambda: rng.uniform(-1e6, 1e6),
            "bytes": lambda: rng.randbytes(rng.randrange(8)),
            "string": self._text,
        }[kind]()

    def _text(self) -> str:
        return "".join(self.rng.choices(string.ascii_letters, k=self.rng.randrange(1, 12)))


def example_records(schema: Mapping[str, Any], count: int, seed: int = 0) -> list[Any]:
    """`count` random records valid for `schema`, reproducible for a seed."""
    gen = _Generator(random.Random(seed))  # noqa: S311 (test data, not secrets)
    return [gen.datum(dict(schema)) for _ in range(count)]


def read_problems(
    writer: Mapping[str, Any], reader: Mapping[str, Any], samples: int = 50, seed: int = 0
) -> list[str]:
    """Why `reader` cannot read records `writer` wrote; empty when every sample resolves."""
    try:
        # Logical types only annotate the wire format; without them any long is a valid datum.
        parsed_writer = fastavro.parse_schema(strip_logical_types(dict(writer)))
        parsed_reader = fastavro.parse_schema(strip_logical_types(dict(reader)))
    except Exception as e:  # an unparsable schema is the first problem to report
        return [f"schema does not parse: {e}"]
    problems = []
    for record in example_records(writer, samples, seed):
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, parsed_writer, record)
        buf.seek(0)
        try:
            fastavro.schemaless_reader(buf, parsed_writer, parsed_reader)
        except Exception as e:
            problems.append(f"{type(e).__name__}: {e}")
            break  # one failing record proves the pair incompatible
    return problems


def compatibility_problems(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[str]]:
    """Both directions: `backward` (new reader, old writer), `forward` (old reader, new writer)."""
    return {"backward": read_problems(old, new), "forward": read_problems(new, old)}

"""The paper's comparison end to end: index -> first stage -> mine (every strategy) -> train -> re-rank -> evaluate."""

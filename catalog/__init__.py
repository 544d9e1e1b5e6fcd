"""Catalog: species, individuals, sightings, media assets and annotations; import and export."""

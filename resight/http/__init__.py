"""Web plumbing every app shares: the REST base classes (`rest`), request guards (`middleware`), parsing of
ids and JSON (`params`, `parsers`), the API schema's common parts (`schema`) and error pages (`errors`)."""

"""Resight project package: settings, urls, and the platform layer (organisations, projects, sharing,
permissions, audit)."""

"""Lineage across layers: column lineage from landing columns to model features, its policy check, and OpenLineage export."""

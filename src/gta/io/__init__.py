"""Readers for the files computational biologists have: manifest, FASTA, GTF/GFF3/TSV, expression, VCF,
annotations. ``gta.io`` knows nothing about models."""

"""Billing records, the transactional outbox, and signed webhook delivery with replay."""

"""lmstream.reference: the reference stream manager."""

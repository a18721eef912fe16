"""The three model stages and the document-level appeal finder: segmentation, batching, detection, stance, embedding."""

"""The intake officers' pages (``/ui``): templates, Khmer translations, form mapping."""

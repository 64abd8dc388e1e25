"""Report formats: each module renders a ``stuck.model.Report`` and nothing else.

``text`` and ``json`` use only the standard library, so a live process can write them without
importing anything heavy. ``html`` uses Jinja2 and is only used from the command line.
"""

"""Cross-cutting helpers with one home each: seeds, JSON values, progress callbacks, devices,
and the style sheet and SVG charts the HTML reports share.

Every package uses these instead of its own copy. Nothing here imports torch at module level.
"""

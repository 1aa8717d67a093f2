"""Cross-cutting helpers with one home each: seeds, JSON values, progress callbacks, devices.

Every package uses these instead of its own copy. Nothing here imports torch at module level.
"""

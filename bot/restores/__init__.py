"""Undo: rebuild the tags of a finished deletion from its snapshot.

`plan` decides what a restore does and what it did (pure); `views` shows it (pure); `intake` turns
`/deletetags restore N` into a draft request; `work` does the Constant Contact calls of each batch.
"""

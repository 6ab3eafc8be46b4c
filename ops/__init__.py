"""Operations, the top layer: the ``runstream`` command and the local stack (they use every other package)."""

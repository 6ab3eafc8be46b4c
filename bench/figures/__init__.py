"""One module per figure of issue 6; each has ``TITLE`` and ``async def run(ctx) -> list[Row]``."""

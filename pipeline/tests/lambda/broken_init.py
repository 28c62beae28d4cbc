"""A handler module that fails while it loads: an init error."""

raise RuntimeError("the configuration is missing")


def handler(event, context):
    return {}

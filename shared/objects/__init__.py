"""Objects callers create upstream through the gateway (stored responses, files, batches, vector stores):
who owns each one, so no caller reaches another's by its id.

    store    the ownership records, in the table `<prefix>objects`
    access   who may read, list, cancel or delete an owned object
"""

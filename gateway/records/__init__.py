"""Conversation records: what was said and when (the record store) and how it sounded (the recordings).

model.py holds the typed record; store.py the two store interfaces and the choice of backend by URL.
Nothing here knows the conversation core or a wire format.
"""

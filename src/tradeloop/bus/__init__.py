"""Message bus: the ``MessageBus`` port, ``InProcessBus`` (default) and ``RedisBus``, codecs."""

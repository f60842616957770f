"""The broker: connections, handshake, dispatch, periodic duties and stats."""

from runq.broker.config import BrokerConfig
from runq.broker.server import Broker

__all__ = ["Broker", "BrokerConfig"]

"""A notification as oslo.messaging's ``messagingv2`` driver puts it on RabbitMQ.

Nova's functional tests replace its two notifiers with fakes that keep the
payload and the context object. This module rebuilds the AMQP body from them
with oslo.messaging's own functions, in the order ``Notifier._notify`` and
``amqpdriver._send`` apply them: the payload through Nova's serializer, the
context redacted (``redacted_copy``) and flattened into ``_context_*`` keys,
``message_id``, ``str(utcnow())``, ``_unique_id``, then the 2.0 envelope.
"""

import uuid

from nova import rpc
from oslo_messaging._drivers import amqp as rpc_amqp
from oslo_messaging._drivers import common as rpc_common
from oslo_messaging.notify import notifier as oslo_notifier
from oslo_serialization import jsonutils
from oslo_utils import timeutils

_SERIALIZER = rpc.RequestContextSerializer(rpc.JsonPayloadSerializer())


def body(topic, publisher_id, priority, event_type, payload, ctxt):
    """``(routing_key, body)`` of one notification, exactly as on the wire."""
    payload = _SERIALIZER.serialize_entity(ctxt, payload)
    context = _SERIALIZER.serialize_context(oslo_notifier._sanitize_context(ctxt))
    message = dict(
        message_id=str(uuid.uuid4()),
        publisher_id=publisher_id,
        event_type=event_type,
        priority=priority,
        payload=payload,
        timestamp=str(timeutils.utcnow()),
    )
    rpc_amqp._add_unique_id(message)
    rpc_amqp.pack_context(message, context)
    envelope = rpc_common.serialize_msg(message)
    return f"{topic}.{priority.lower()}", jsonutils.dumps(envelope)

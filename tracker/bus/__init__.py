"""RabbitMQ edges: consume Nova's notifications, dead-letter poison, publish capacity."""

"""The notifier (`messaging worker`): outbox rows held until working hours, merged per
conversation, sent by e-mail (SMTP) and Web Push. See docs/notifications.md."""

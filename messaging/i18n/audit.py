"""Texts of the audit export (messaging.audit_export): the document a principal hands over."""

TEXTS: dict[str, tuple[str, str]] = {
    "audit_doc_title": (
        "Dossier de conversation : extraction d'audit",
        "Conversation record: audit export",
    ),
    "audit_notice": (
        "Ce document reproduit le contenu original de la conversation, y compris les messages "
        "supprimés par leur auteur ou retirés par la direction. Son extraction est elle-même "
        "consignée au registre des consultations d'audit.",
        "This document reproduces the original content of the conversation, including messages "
        "deleted by their sender or withdrawn by the principal. Its export is itself recorded "
        "in the register of audit reads.",
    ),
    "audit_school": ("École", "School"),
    "audit_conversation": ("Conversation", "Conversation"),
    "audit_kind": ("Type", "Kind"),
    "audit_kind_direct": ("Conversation privée", "Direct conversation"),
    "audit_kind_group": ("Conversation de groupe", "Group conversation"),
    "audit_kind_broadcast": ("Communiqué", "Announcement"),
    "audit_conv_title": ("Titre", "Title"),
    "audit_no_title": ("(sans titre)", "(untitled)"),
    "audit_created_at": ("Créée le", "Created"),
    "audit_state": ("État à l'extraction", "State when exported"),
    "audit_state_locked": ("verrouillée", "locked"),
    "audit_state_open": ("ouverte", "open"),
    "audit_period": ("Période", "Period"),
    "audit_period_value": ("du {start} au {end}", "from {start} to {end}"),
    "audit_event_count": ("Événements", "Events"),
    "audit_exported_at": ("Extrait le", "Exported"),
    "audit_exported_by": ("Extrait par", "Exported by"),
    "audit_record": ("N° au registre des consultations", "No. in the register of audit reads"),
    "audit_timezone": ("Fuseau horaire des heures", "Time zone of the times"),
    "audit_members": ("Participants", "Members"),
    "audit_member_line": (
        "{name} ({id}), {role}; membre depuis le {joined}",
        "{name} ({id}), {role}; member since {joined}",
    ),
    "audit_member_left": ("; a quitté le {left}", "; left on {left}"),
    "audit_role_staff": ("personnel", "staff"),
    "audit_role_parent": ("parent", "parent"),
    "audit_role_sender": ("expéditeur du communiqué", "sender of the announcement"),
    "audit_role_recipient": ("destinataire du communiqué", "recipient of the announcement"),
    "audit_events": ("Déroulement", "Events"),
    "audit_event_head": ("N° {seq}  ·  {time}  ·  {actor}", "No. {seq}  ·  {time}  ·  {actor}"),
    "audit_system": ("Système", "System"),
    "audit_ev_created": (
        "Conversation créée. Participants : {members}.",
        "Conversation created. Members: {members}.",
    ),
    "audit_ev_created_many": (
        "Conversation créée avec {count} participants (voir la liste des participants).",
        "Conversation created with {count} members (see the list of members).",
    ),
    "audit_ev_deleted": (
        "A supprimé son message n° {target}.",
        "Deleted their message No. {target}.",
    ),
    "audit_ev_removed": (
        "A retiré le message n° {target}. Motif : {reason}",
        "Withdrew message No. {target}. Reason: {reason}",
    ),
    "audit_ev_locked": (
        "A verrouillé la conversation. Motif : {reason}",
        "Locked the conversation. Reason: {reason}",
    ),
    "audit_ev_locked_no_reason": (
        "A verrouillé la conversation (aucun motif donné).",
        "Locked the conversation (no reason given).",
    ),
    "audit_ev_locked_no_staff": (
        "Conversation verrouillée automatiquement : aucun membre du personnel n'y participait "
        "plus.",
        "Conversation locked automatically: no staff member took part in it any more.",
    ),
    "audit_ev_unlocked": ("A déverrouillé la conversation.", "Unlocked the conversation."),
    "audit_ev_member_added": ("A ajouté {user}.", "Added {user}."),
    "audit_ev_member_removed": (
        "{user} a quitté la conversation.",
        "{user} left the conversation.",
    ),
    "audit_ev_other": ("Événement « {kind} ».", "Event '{kind}'."),
    "audit_empty_body": ("(message sans texte)", "(message without text)"),
    "audit_reply_to": ("En réponse au message n° {seq}.", "In reply to message No. {seq}."),
    "audit_attachments": ("Pièces jointes : {files}", "Attachments: {files}"),
    "audit_withdrawn_deleted": (
        "SUPPRIMÉ par son auteur, {by}, le {at} (événement n° {seq}). Les participants ne "
        "voient plus ce message.",
        "DELETED by its sender, {by}, on {at} (event No. {seq}). Participants no longer see "
        "this message.",
    ),
    "audit_withdrawn_removed": (
        "RETIRÉ par {by} le {at} (événement n° {seq}). Motif : {reason}. Les participants ne "
        "voient plus ce message.",
        "WITHDRAWN by {by} on {at} (event No. {seq}). Reason: {reason}. Participants no "
        "longer see this message.",
    ),
    "audit_integrity": ("Intégrité", "Integrity"),
    "audit_integrity_text": (
        "Chaque événement enregistre l'empreinte SHA-256 de son prédécesseur et de son propre "
        "contenu. Empreinte du dernier événement (n° {seq}) :",
        "Every event records the SHA-256 hash of its predecessor and of its own content. Hash "
        "of the last event (No. {seq}):",
    ),
    "audit_integrity_none": (
        "Aucune empreinte n'est enregistrée pour le dernier événement.",
        "No hash is recorded for the last event.",
    ),
    "audit_page": (
        "{conv}  ·  extrait le {at}  ·  page {page} de {pages}",
        "{conv}  ·  exported {at}  ·  page {page} of {pages}",
    ),
}

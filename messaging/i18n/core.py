"""Default texts for every error code, and the gateway's own reasons."""

TEXTS: dict[str, tuple[str, str]] = {
    "invalid": ("Requête invalide.", "Invalid request."),
    "unauthenticated": ("Veuillez vous reconnecter.", "Please sign in again."),
    "forbidden": ("Action non permise.", "You are not allowed to do this."),
    "not_found": ("Conversation ou élément introuvable.", "Conversation or item not found."),
    "locked": (
        "Cette conversation est verrouillée par la direction.",
        "This conversation has been locked by the principal.",
    ),
    "no_staff": (
        "Une conversation de groupe doit inclure un membre du personnel de l'école.",
        "A group conversation must include a staff member of the school.",
    ),
    "feature_disabled": (
        "Cette fonction n'est pas activée pour votre école.",
        "This feature is not enabled for your school.",
    ),
    "too_large": ("Contenu trop volumineux.", "Content too large."),
    "unsupported_type": ("Type de fichier non accepté.", "File type not accepted."),
    "rate_limited": (
        "Trop de messages en peu de temps; réessayez dans un instant.",
        "Too many messages at once; try again in a moment.",
    ),
    "conflict": ("Conflit avec l'état actuel.", "Conflicts with the current state."),
    "unavailable": (
        "Service temporairement indisponible; réessayez plus tard.",
        "Service temporarily unavailable; try again later.",
    ),
    "internal": ("Erreur interne.", "Internal error."),
    "roster_invalid": (
        "Le document de l'effectif contient {count} problème(s); rien n'a été appliqué.",
        "The roster document has {count} problem(s); nothing was applied.",
    ),
    "already_deleted": ("Ce message est déjà supprimé.", "This message is already deleted."),
    "not_your_message": (
        "Vous ne pouvez supprimer que vos propres messages.",
        "You can only delete your own messages.",
    ),
    "not_a_message": ("Cet événement n'est pas un message.", "This event is not a message."),
    "reply_to_unknown": ("Le message cité n'existe pas.", "The quoted message does not exist."),
    "read_beyond_last": (
        "Impossible de marquer comme lu un message qui n'existe pas encore.",
        "Cannot mark as read a message that does not exist yet.",
    ),
    "cid_reused": (
        "Cet identifiant client a déjà servi pour un autre contenu.",
        "This client id was already used for different content.",
    ),
    "attachments_unavailable": (
        "L'envoi de pièces jointes n'est pas encore offert.",
        "Sending attachments is not available yet.",
    ),
    "hello_repeated": ("Vous êtes déjà connecté.", "You are already connected."),
    "members_empty": (
        "Choisissez au moins une autre personne.",
        "Choose at least one other person.",
    ),
    "unknown_user": ("Personne introuvable.", "Person not found."),
    "already_locked": (
        "Cette conversation est déjà verrouillée.",
        "This conversation is already locked.",
    ),
    "not_locked": ("Cette conversation n'est pas verrouillée.", "This conversation is not locked."),
    "no_staff_left": (
        "Conversation verrouillée : aucun membre du personnel n'y participe plus.",
        "Conversation locked: no staff member takes part in it any more.",
    ),
    "admin_only": ("Réservé à l'administration.", "Administrators only."),
}

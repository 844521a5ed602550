"""Texts of bulk sends (envois collectifs)."""

TEXTS: dict[str, tuple[str, str]] = {
    "audience_empty": ("Choisissez au moins un destinataire.", "Choose at least one recipient."),
    "audience_one_kind": (
        "Choisissez un seul type de destinataires : l'école, des années, des groupes ou des "
        "parents.",
        "Choose one kind of audience: the school, grades, groups or parents.",
    ),
    "audience_no_recipients": (
        "Aucun parent ne correspond à ces destinataires.",
        "No parent matches this audience.",
    ),
    "broadcast_unknown_parent": (
        "Un des parents choisis n'est pas un parent de l'école.",
        "One of the chosen parents is not a parent at this school.",
    ),
    "broadcast_unknown_group": (
        "Un des groupes choisis n'existe pas dans cette école.",
        "One of the chosen groups does not exist at this school.",
    ),
    "broadcast_unknown_grade": (
        "Aucun groupe de cette année dans l'école.",
        "This school has no group in that grade.",
    ),
    "bulk_send_disabled": (
        "Les envois collectifs ne sont pas activés pour cette école.",
        "Bulk sends are not enabled for this school.",
    ),
    "broadcast_not_allowed": (
        "Seuls le secrétariat, la direction et les enseignants peuvent faire un envoi collectif.",
        "Only the office, the principal and teachers can send to many families.",
    ),
    "broadcast_own_groups_only": (
        "Vous pouvez écrire à vos groupes seulement.",
        "You can only send to your own groups.",
    ),
    "send_at_zone": (
        "Indiquez l'heure d'envoi avec son fuseau horaire.",
        "Give the send time with its time zone.",
    ),
    "send_at_past": ("L'heure d'envoi est déjà passée.", "The send time has already passed."),
    "send_at_too_far": (
        "L'envoi ne peut être prévu plus d'un an à l'avance.",
        "A send cannot be scheduled more than a year ahead.",
    ),
    "broadcast_already_sent": (
        "Cet envoi est déjà parti ou annulé.",
        "This send has already gone out or was cancelled.",
    ),
    "broadcast_not_sent": ("Cet envoi n'est pas encore parti.", "This send has not gone out yet."),
    "replies_closed": (
        "L'expéditeur n'accepte pas de réponse à cet envoi.",
        "The sender does not accept replies to this message.",
    ),
}

"""Texts of notifications (e-mail, push), of staff availability, and of the hours routes."""

TEXTS: dict[str, tuple[str, str]] = {
    # the merged notification
    "notify_one": ("Nouveau message de {senders}", "New message from {senders}"),
    "notify_many": (
        "{count} nouveaux messages de {senders}",
        "{count} new messages from {senders}",
    ),
    "notify_in_title": ("{summary} dans « {title} »", "{summary} in “{title}”"),
    "notify_two_senders": ("{a} et {b}", "{a} and {b}"),
    "notify_more_senders": ("{a} et {n} autres personnes", "{a} and {n} others"),
    "notify_subject": ("{summary} · {school}", "{summary} · {school}"),
    "notify_greeting": ("Bonjour {name},", "Hello {name},"),
    "notify_waiting": (
        "{summary} vous attend dans la messagerie de {school}.",
        "{summary} is waiting for you in the {school} messaging.",
    ),
    "notify_waiting_many": (
        "{summary} vous attendent dans la messagerie de {school}.",
        "{summary} are waiting for you in the {school} messaging.",
    ),
    "notify_open": ("Ouvrir la conversation", "Open the conversation"),
    "notify_read_at": ("Lire la conversation : {link}", "Read the conversation: {link}"),
    "notify_withdrawn": ("(message retiré)", "(message withdrawn)"),
    "notify_more_messages": ("… et {n} autre(s) message(s).", "… and {n} more message(s)."),
    "notify_private": (
        "Pour protéger la vie privée des élèves, le contenu des messages ne figure pas dans ce "
        "courriel.",
        "To protect students' privacy, the content of the messages is not included in this e-mail.",
    ),
    "notify_with_text": (
        "Votre école a choisi d'inclure le texte des messages dans ces courriels.",
        "Your school chose to include the text of messages in these e-mails.",
    ),
    "notify_footer": (
        "Courriel automatique de la messagerie école-famille; n'y répondez pas.",
        "Automatic e-mail from the school-family messaging; please do not reply.",
    ),
    "notify_staff_hours": (
        "Vous recevez cet avis pendant vos heures de travail.",
        "You receive this notice during your working hours.",
    ),
    # availability of a staff member, for the writer
    "notify_today": ("aujourd'hui", "today"),
    "notify_tomorrow": ("demain", "tomorrow"),
    "notify_day_at": ("{day} à {time}", "{day} at {time}"),
    "notify_sees_at": (
        "{name} verra votre message {when}.",
        "{name} will see your message {when}.",
    ),
    "notify_sees_later": (
        "{name} n'a pas d'heures de travail prévues; votre message l'attendra.",
        "{name} has no working hours scheduled; your message will wait for them.",
    ),
    # the routes
    "working_hours_invalid": (
        "Les heures de travail contiennent {count} problème(s); rien n'a été changé.",
        "The working hours have {count} problem(s); nothing was changed.",
    ),
    "quiet_hours_invalid": (
        "Les heures de tranquillité contiennent {count} problème(s); rien n'a été changé.",
        "The quiet hours have {count} problem(s); nothing was changed.",
    ),
    "staff_only_hours": (
        "Seul le personnel de l'école a des heures de travail.",
        "Only school staff have working hours.",
    ),
    "parents_only_quiet": (
        "Les heures de tranquillité sont réservées aux parents; le personnel règle ses heures de "
        "travail.",
        "Quiet hours are for parents; staff set their working hours instead.",
    ),
    "push_unavailable": (
        "Les notifications dans le navigateur ne sont pas offertes par ce serveur.",
        "Browser notifications are not offered by this server.",
    ),
    "push_subscription_invalid": (
        "Cet abonnement aux notifications est invalide : {problem}.",
        "This notification subscription is invalid: {problem}.",
    ),
    "principal_only_holds": (
        "Seule la direction de l'école peut consulter ce registre.",
        "Only the school's principal may see this record.",
    ),
}

"""Texts for the wire protocol's reasons: malformed frames, limits, tokens, the hello handshake."""

TEXTS: dict[str, tuple[str, str]] = {
    # decoding (messaging.protocol.codec)
    "invalid_frame": (
        "Message illisible : le format reçu n'est pas valide.",
        "Unreadable message: the format received is not valid.",
    ),
    "frame_not_map": (
        "Message illisible : un objet était attendu.",
        "Unreadable message: an object was expected.",
    ),
    "frame_too_deep": (
        "Message illisible : imbrication trop profonde (au plus {max} niveaux).",
        "Unreadable message: nested too deeply (at most {max} levels).",
    ),
    "frame_too_large": (
        "Message trop volumineux; la connexion est fermée.",
        "Message too large; the connection is closed.",
    ),
    # fields (messaging.protocol.frames)
    "unknown_type": ("Type de requête inconnu.", "Unknown request type."),
    "field_missing": ("Le champ « {field} » est requis.", "The field '{field}' is required."),
    "field_type": (
        "Le champ « {field} » n'est pas du bon type.",
        "The field '{field}' has the wrong type.",
    ),
    "field_invalid": (
        "La valeur du champ « {field} » n'est pas valide.",
        "The value of the field '{field}' is not valid.",
    ),
    "field_empty": (
        "Le champ « {field} » ne peut pas être vide.",
        "The field '{field}' cannot be empty.",
    ),
    "field_range": (
        "La valeur du champ « {field} » doit être entre {min} et {max}.",
        "The value of the field '{field}' must be between {min} and {max}.",
    ),
    "field_too_long": (
        "Le champ « {field} » dépasse {max} caractères.",
        "The field '{field}' is longer than {max} characters.",
    ),
    "list_too_long": (
        "La liste « {field} » compte plus de {max} éléments.",
        "The list '{field}' has more than {max} items.",
    ),
    "list_duplicate": (
        "La liste « {field} » contient des doublons.",
        "The list '{field}' contains duplicates.",
    ),
    "body_too_long": (
        "Le message dépasse {max} caractères.",
        "The message is longer than {max} characters.",
    ),
    "empty_message": (
        "Le message est vide : écrivez un texte ou joignez un fichier.",
        "The message is empty: write some text or attach a file.",
    ),
    "too_many_attachments": (
        "Au plus {max} pièces jointes par message.",
        "At most {max} attachments per message.",
    ),
    # authentication (messaging.gateway.auth and the hello handshake)
    "token_missing": (
        "Veuillez vous connecter : aucun jeton d'accès reçu.",
        "Please sign in: no access token was received.",
    ),
    "token_invalid": (
        "Jeton d'accès invalide; veuillez vous reconnecter.",
        "Invalid access token; please sign in again.",
    ),
    "token_expired": (
        "Votre session a expiré; veuillez vous reconnecter.",
        "Your session has expired; please sign in again.",
    ),
    "hello_expected": (
        "La connexion doit commencer par un message « hello ».",
        "The connection must start with a 'hello' message.",
    ),
    "hello_timeout": (
        "Délai de connexion dépassé; veuillez réessayer.",
        "Sign-in took too long; please try again.",
    ),
    "hello_repeated": (
        "Vous êtes déjà connecté sur cette connexion.",
        "You are already signed in on this connection.",
    ),
}

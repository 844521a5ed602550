"""Texts for the reasons of `messaging.attachments.policy` and the attachment routes, written
for the parent or teacher who just tried to send a file."""

TEXTS: dict[str, tuple[str, str]] = {
    "file_too_large": (
        "Ce fichier est trop volumineux : la limite est de {max_mib} Mo par fichier.",
        "This file is too large: the limit is {max_mib} MB per file.",
    ),
    "file_empty": ("Ce fichier est vide.", "This file is empty."),
    "type_not_allowed": (
        "Ce fichier n'est pas accepté : seuls les JPEG, PNG, PDF et Word sont permis.",
        "This file is not accepted: only JPEG, PNG, PDF and Word files are allowed.",
    ),
    "file_damaged": (
        "Ce fichier semble endommagé ou incomplet et n'a pas pu être lu. "
        "Enregistrez-le de nouveau, puis réessayez.",
        "This file seems damaged or incomplete and could not be read. "
        "Save it again, then try once more.",
    ),
    "image_too_large": (
        "Cette image compte trop de pixels. Réduisez sa taille, puis réessayez.",
        "This image has too many pixels. Make it smaller, then try again.",
    ),
    "pdf_javascript": (
        "Ce PDF contient du code (JavaScript) et ne peut pas être envoyé. "
        "Imprimez-le de nouveau en PDF, puis réessayez.",
        "This PDF contains code (JavaScript) and cannot be sent. "
        "Print it to PDF again, then try once more.",
    ),
    "pdf_launch": (
        "Ce PDF peut lancer un programme, ouvrir un autre fichier ou envoyer des données; "
        "il ne peut pas être envoyé. Imprimez-le de nouveau en PDF, puis réessayez.",
        "This PDF can start a program, open another file or send data away, so it cannot "
        "be sent. Print it to PDF again, then try once more.",
    ),
    "pdf_embedded_file": (
        "Ce PDF contient d'autres fichiers intégrés et ne peut pas être envoyé. "
        "Envoyez plutôt chaque fichier séparément.",
        "This PDF has other files embedded in it and cannot be sent. "
        "Send each file on its own instead.",
    ),
    "pdf_encrypted": (
        "Ce PDF est protégé par un mot de passe et ne peut pas être vérifié. "
        "Retirez la protection, puis réessayez.",
        "This PDF is password-protected and cannot be checked. "
        "Remove the protection, then try again.",
    ),
    "word_macros": (
        "Ce document Word contient des macros et ne peut pas être envoyé. "
        "Enregistrez-le en .docx sans macros, ou en PDF.",
        "This Word document contains macros and cannot be sent. "
        "Save it as a .docx without macros, or as a PDF.",
    ),
    "word_active_content": (
        "Ce document Word contient des objets actifs (contrôles ou objets intégrés) et ne peut "
        "pas être envoyé. Enregistrez-le en PDF, puis réessayez.",
        "This Word document contains active content (controls or embedded objects) and "
        "cannot be sent. Save it as a PDF, then try again.",
    ),
    "archive_too_large": (
        "Ce document Word prendrait beaucoup trop de place une fois ouvert; il ne peut pas être "
        "envoyé.",
        "This Word document would take far too much space once opened, so it cannot be sent.",
    ),
    "file_infected": (
        "L'antivirus a détecté une menace dans ce fichier. Il n'a pas été envoyé.",
        "The virus scanner found a threat in this file. It was not sent.",
    ),
    "scan_unavailable": (
        "La vérification antivirus est momentanément indisponible. Réessayez dans quelques "
        "minutes.",
        "Virus scanning is unavailable for the moment. Please try again in a few minutes.",
    ),
    "storage_unavailable": (
        "Les fichiers sont momentanément indisponibles. Réessayez dans quelques minutes.",
        "Files are unavailable for the moment. Please try again in a few minutes.",
    ),
    "upload_malformed": (
        "L'envoi du fichier est mal formé. Réessayez depuis l'application.",
        "The file upload is malformed. Please try again from the app.",
    ),
    "upload_no_file": (
        "Aucun fichier n'a été reçu (champ « file »).",
        "No file was received (field 'file').",
    ),
    "attachment_unknown": (
        "Une pièce jointe est introuvable. Téléversez le fichier de nouveau.",
        "An attachment could not be found. Please upload the file again.",
    ),
    "attachments_disabled": (
        "Votre école n'a pas activé l'envoi de pièces jointes.",
        "Your school has not turned on attachments.",
    ),
    "preview_unavailable": (
        "Aucun aperçu n'est offert pour ce fichier.",
        "No preview is available for this file.",
    ),
}

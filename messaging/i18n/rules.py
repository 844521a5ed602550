"""Texts for the reasons returned by `messaging.domain.authz` (keys not already in `core`)."""

TEXTS: dict[str, tuple[str, str]] = {
    "account_inactive": (
        "Votre compte n'est plus actif. Communiquez avec l'école au besoin.",
        "Your account is no longer active. Please contact the school if needed.",
    ),
    "user_inactive": (
        "Une des personnes choisies n'a plus accès à la messagerie.",
        "One of the selected people no longer has access to messaging.",
    ),
    "not_in_school": (
        "Votre compte n'est pas rattaché à cette école.",
        "Your account is not linked to this school.",
    ),
    "member_not_in_school": (
        "Une des personnes choisies n'est pas rattachée à cette école.",
        "One of the selected people is not linked to this school.",
    ),
    "not_your_students_parent": (
        "Vous ne pouvez écrire qu'aux parents des élèves de vos groupes.",
        "You can only write to parents of students in your groups.",
    ),
    "parent_initiated_disabled": (
        "Votre école ne permet pas aux parents d'entamer une conversation. "
        "Le personnel vous écrira au besoin.",
        "Your school does not let parents start conversations. Staff will write to you if needed.",
    ),
    "parents_need_staff": (
        "Les parents ne peuvent pas converser entre eux sans un membre du personnel de l'école.",
        "Parents cannot converse with each other without a staff member of the school.",
    ),
    "groups_disabled": (
        "Les conversations de groupe ne sont pas activées pour cette école.",
        "Group conversations are not enabled for this school.",
    ),
    "direct_needs_one": (
        "Une conversation privée se fait avec une seule autre personne.",
        "A direct conversation is with exactly one other person.",
    ),
    "cannot_include_self": (
        "N'ajoutez pas votre propre nom à la liste des participants.",
        "Do not include yourself in the list of participants.",
    ),
    "duplicate_member": (
        "Une même personne figure deux fois dans la liste.",
        "The same person appears twice in the list.",
    ),
    "add_only_groups": (
        "On ne peut ajouter des personnes qu'à une conversation de groupe.",
        "People can only be added to a group conversation.",
    ),
    "staff_only_add": (
        "Seul le personnel de l'école peut ajouter des personnes à cette conversation.",
        "Only school staff can add people to this conversation.",
    ),
    "leave_only_groups": (
        "On ne peut quitter qu'une conversation de groupe.",
        "Only a group conversation can be left.",
    ),
    "broadcast_sender_only": (
        "Seule la personne qui a envoyé ce communiqué peut y écrire.",
        "Only the sender of this announcement can write in it.",
    ),
    "principal_only": (
        "Cette action est réservée à la direction de l'école.",
        "This action is reserved for the school's principal.",
    ),
}

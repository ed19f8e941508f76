"""Realistic chat-length texts (5-200 tokens, most of them short), generated from a fixed seed."""

from __future__ import annotations

import random

OPENERS = [
    "hi",
    "hello there",
    "hey",
    "quick question",
    "thanks for the help earlier",
    "sorry to bother you",
    "good morning",
    "ok so",
    "I was wondering",
    "can you help me",
]
SENTENCES = [
    "my invoice shows a charge I do not recognise from last month",
    "the app keeps crashing when I open the settings page on my phone",
    "how do I reset my password if I no longer have access to my email",
    "what is the difference between the team plan and the business plan",
    "could you summarise this article about renewable energy policy in a few bullet points",
    "I need to cancel my subscription before the next billing date",
    "write a short poem about autumn leaves falling in the park",
    "the delivery was supposed to arrive yesterday but the tracking page has not updated",
    "explain how a hash map works and when I should use one instead of a list",
    "please translate the following paragraph into French for my colleague",
    "is there a discount for non-profit organisations or students",
    "my two factor authentication codes stopped working after I changed phones",
    "what are some good exercises to improve posture when working at a desk all day",
    "I want to talk to a human agent about a complaint",
    "can you recommend a recipe for dinner that uses chickpeas and spinach",
    "the export to spreadsheet button gives me an error message about permissions",
    "tell me a fun fact about octopuses",
    "how long does it usually take for a refund to show up on my card",
]


def chat_texts(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        r = rng.random()
        sentences = 1 if r < 0.6 else rng.randint(2, 5) if r < 0.9 else rng.randint(6, 12)
        parts = [rng.choice(OPENERS)] if rng.random() < 0.4 else []
        parts += [rng.choice(SENTENCES) for _ in range(sentences)]
        texts.append(". ".join(parts) + rng.choice([".", "?", "!", ""]))
    return texts


# Sentences in the voice of an assistant's answer: what LLM output streams look like.
ANSWER_SENTENCES = [
    "Thanks for reaching out, I am happy to help with that",
    "The charge you are seeing is most likely the annual renewal of your plan",
    "Refunds usually appear on your card within five to seven business days",
    "You can reset your password from the sign-in page by choosing the forgot password link",
    "The business plan adds single sign-on, audit logs and priority support",
    "A hash map stores values by key, so looking one up takes about the same time however large it grows",
    "Octopuses have three hearts and their blood is blue because it carries copper",
    "For dinner, a chickpea and spinach curry takes about thirty minutes and keeps well",
    "If the tracking page has not updated, the courier may not have scanned the parcel yet",
    "Sitting with your feet flat and your screen at eye level helps your posture a lot",
    "Here is a short poem about autumn leaves drifting over the quiet park",
    "Your subscription stays active until the end of the current billing period",
    "Non-profit organisations get a forty percent discount on every plan",
    "After changing phones, you can move your two factor codes by scanning the setup code again",
    "The permissions error appears when your role cannot export data, an admin can change that",
    "Let me know if there is anything else I can do for you today",
]

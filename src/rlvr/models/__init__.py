"""rlvr.models"""
